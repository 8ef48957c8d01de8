"""Device readings: POST /devices/readings."""
