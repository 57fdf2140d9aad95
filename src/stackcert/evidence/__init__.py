"""Evidence: the vocabulary every layer shares — findings, error signatures, log scanning, classification."""
