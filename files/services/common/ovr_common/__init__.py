"""Code shared by the ovr-tele services (settings, storage, protocol)."""
