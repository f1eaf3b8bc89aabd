"""Learners written only against colearn_chain's public interface, to copy and adapt."""
