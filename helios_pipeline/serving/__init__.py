"""What the platform publishes for readers (the analytics API), never the warehouse file a
Dagster run is writing."""
