"""Third-party programs for the tests: fetched, built and cached outside the
repository (sources.py); our own Go test programs (go/)."""
