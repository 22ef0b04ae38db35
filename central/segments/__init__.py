"""Segments: saved, versioned rules over tags, statistics and attributes, evaluated in the database.

A segment names a rule in the custom-tag rule language (:mod:`central.customers.rules`) and the
channel marketing means to reach its members on. Its live count is one ``COUNT(*)`` of the rule
compiled to SQL; an evaluation materialises membership in ``segment_members`` and appends every
change to ``segment_membership_events``, both with set-based statements. Only live customers whom
the consent gate lets marketing reach on the segment's channel are members.
"""
