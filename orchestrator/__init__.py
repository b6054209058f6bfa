"""Rolecast: Ansible roles in, immutable container images out, through Packer."""

__version__ = "0.1.0"
