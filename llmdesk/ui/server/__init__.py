"""Parts of the server domain shown outside the Server page (the managed runtimes)."""
