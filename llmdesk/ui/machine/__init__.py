"""The Machine page's parts (core domain: machine): the choice of a GPU to plan for, shared by the
pages that judge fits."""
