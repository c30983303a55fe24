/// CustosPolicy: YAML policies and reference values, strict load, content addressing, evaluation.
public enum CustosPolicy {}
