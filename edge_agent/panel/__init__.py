"""The cashier panel: a page on the till PC's loopback that shows the last scan as it happens."""
