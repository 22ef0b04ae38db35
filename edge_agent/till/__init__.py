"""The till: scans at the counter, member codes verified offline."""
