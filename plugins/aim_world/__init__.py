"""The embedded AIM world."""
