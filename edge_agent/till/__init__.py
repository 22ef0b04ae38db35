"""The till: what a register's scanners read, verified offline (member codes, coupons)."""
