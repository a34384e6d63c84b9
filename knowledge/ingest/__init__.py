"""Turning handbook files (.docx, .pdf, .md, .txt) into articles and passages."""
