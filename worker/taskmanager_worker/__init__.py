"""TaskManager's GPU worker: leases inference tasks from the API and runs them in executor processes."""

__version__ = "0.1.0"
