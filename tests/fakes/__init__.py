"""Local fakes of external HTTP APIs that cannot run here; each speaks the real protocol."""
