"""The worker half of zoolab: the model zoo, datasets, the training loop and the claim/run/heartbeat loop."""
