"""Invitations: signed, expiring QR codes with which new members register themselves into a union or unit."""
