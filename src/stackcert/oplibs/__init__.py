"""Operator libraries stackcert ships: fault_ops plants known faults (a named fake)."""
