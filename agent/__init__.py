"""The Warden agent: probes -> records -> spool -> Report stream."""

__version__ = "0.1.0"
