// CustosTDX: see ../../README.md. Filled in by its own issue.
public enum CustosTDXModule {}
