"""The firewall: one enforcer service that every endpoint and every job asks (SPEC F1-F8)."""
from federation.firewall.service import Denied, Firewall, Subject, firewall

__all__ = ["Denied", "Firewall", "Subject", "firewall"]
