"""The Chat page's parts: the saved-chats list, one message with its streaming markdown view, the
parameters panel and the inline problem notice."""
