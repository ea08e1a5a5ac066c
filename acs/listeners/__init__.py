"""LAYER 3 beside ``acs.web``: the listeners that are not HTTP (TFTP, FTP). Each turns its
protocol's requests into calls of ``acs.services`` and runs in the workers' event loops."""
