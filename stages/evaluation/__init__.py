"""Classification metrics shared by zero-shot evaluation and every tuning protocol."""
