"""Lightweight, offline terminology checks: code shapes and check digits, UCUM syntax."""
