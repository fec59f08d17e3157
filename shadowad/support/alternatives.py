"""What an error about a function without a derivative rule suggests: a
supported spelling of the same computation where one exists, and how to
give the function a derivative of one's own."""

# qualified name -> a supported way to compute the same thing
ALTERNATIVES = {
    "np.linalg.eig": "For a symmetric (Hermitian) matrix use np.linalg.eigh, which has one",
    "np.linalg.eigvals": "For a symmetric matrix use np.linalg.eigh(a)[0], which has one",
    "np.nanprod": "np.prod(np.where(np.isnan(x), 1.0, x)) has one",
    "np.nanmax": "np.max(np.where(np.isnan(x), -np.inf, x)) has one",
    "np.nanmin": "np.min(np.where(np.isnan(x), np.inf, x)) has one",
    "np.nanstd": "np.std(x[~np.isnan(x)]) has one",
    "np.nanvar": "np.var(x[~np.isnan(x)]) has one",
    "np.nan_to_num": "np.where(np.isfinite(x), x, 0.0) has one",
    "np.select": "nested np.where(cond, a, np.where(...)) has one",
    "np.piecewise": "np.where(cond, f(x), g(x)) has one",
    "np.cumulative_sum": "np.cumsum has one",
    "np.cumulative_prod": "np.cumprod has one",
    "np.vecdot": "np.sum(a * b, axis=-1) has one",
    "np.matvec": "a @ v has one",
    "np.vecmat": "v @ a has one",
    "np.ediff1d": "np.diff(np.ravel(x)) has one",
    "np.gradient": "central differences with slices, (x[2:] - x[:-2]) / (2 * h), have one",
    "np.linalg.tensorsolve": "np.linalg.solve on reshaped operands has one",
    "np.fmod": "x - y * np.trunc(x / y) has one (np.trunc's derivative is zero)",
    "np.remainder": "x - y * np.floor(x / y) has one (np.floor's derivative is zero)",
    "np.mod": "x - y * np.floor(x / y) has one (np.floor's derivative is zero)",
    "np.ldexp": "x * 2.0 ** n has one",
}


def no_rule_hint(name, ufunc=False):
    """The sentences after "``name`` has no derivative rule in shadowad"."""
    alt = ALTERNATIVES.get(name)
    if ufunc or not name.startswith("np."):
        how = "wrap it in a sad.custom_rule and call the rule inside f"
    else:
        how = f"sad.custom_rule(implements={name})"
    return ((f" {alt}." if alt else "")
            + f" To give it a derivative of your own: {how} (README, \"Custom rules\"). To "
            "use its value without derivative: sad.primal(x).")
