"""stackcert: certify that an LLM runs correctly and fast on a hardware + software stack."""

__version__ = "0.1.0"
SCHEMA_VERSION = "1.0"
