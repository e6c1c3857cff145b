"""The inference engine: preprocessing from the card, batched inference, outputs on the source grid."""
