"""Runs the real parts (moto server, Lambda RIE, built artifacts) on one machine."""
