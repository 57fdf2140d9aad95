"""stackcert run: config, ledger, steps, gates, verdict, resume."""
