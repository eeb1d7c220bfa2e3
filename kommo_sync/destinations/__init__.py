"""Destinations: each vendor is one module implementing `base.Destination`."""
