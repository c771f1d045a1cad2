"""`llmgen weights`: what the weights mirrors hold, read from the object stores."""
