"""Host probe, accelerator vendor registry and network/mirror probes."""
