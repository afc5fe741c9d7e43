"""s2s-bridge: Kafka -> customer-data-platform server-to-server bridge."""

__version__ = "0.1.0"
