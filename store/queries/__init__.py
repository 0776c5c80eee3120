"""Query functions, one module per area; callers pass an AsyncSession and own the transaction."""
