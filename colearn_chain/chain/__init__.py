"""Talking to the CollectiveLearning contract: its artifact, its events, and signed transactions."""
