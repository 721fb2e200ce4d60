"""The tape: Function (recorded ops), the backward engine, grad mode and gradcheck."""
