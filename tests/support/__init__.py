"""Test support: real local servers and processes."""
