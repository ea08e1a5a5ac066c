"""A CPE fleet simulator shipped with the ACS: ``acs simulate``."""
