"""Forward mode: dual values whose tangents travel with them."""
