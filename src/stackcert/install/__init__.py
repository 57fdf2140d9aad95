"""Install plan, wheel selection, vendor-build protection and the import gate."""
