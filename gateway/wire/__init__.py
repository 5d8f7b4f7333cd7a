"""Wire formats shared by the gateway's edge and its model server: binary tensors, compression."""
