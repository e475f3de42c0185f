"""The worker fleet: the pure scaling policy, the EC2 pool it acts on, the scheduled
scaler that joins them, and the status ``GET /fleet`` shows."""
