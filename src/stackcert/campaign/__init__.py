"""Campaigns: a matrix of certifications run as Ray tasks, each an ordinary `stackcert run`."""
