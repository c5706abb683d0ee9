"""What the hub knows of its nodes: health rules, fleet rows, the monitor, the exchange history,
and the records of their exchanges (`sessions`)."""
