/// CustosAudit: the append-only, verifiable log.
public enum CustosAudit {}
