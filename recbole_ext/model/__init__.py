"""Plugin models; importing this package registers each with RecBole's model lookup."""
