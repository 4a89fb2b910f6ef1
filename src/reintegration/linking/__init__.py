"""The linking unit (trusted third party): BSN checks, pseudonymisation, linkage."""
