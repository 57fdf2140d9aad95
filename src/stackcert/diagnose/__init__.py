"""Log scanning, finding classification, A/B diff and operator bisection."""
