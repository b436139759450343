"""Pure decisions: who may do what with which key, right now. No I/O, no database."""
