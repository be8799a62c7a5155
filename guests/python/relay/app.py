"""A subscription handler in Python (the `subscriber` world).

A message whose data starts with `ask:` came with a request: it is answered
with `python saw: ` and the rest. Any other is sent on the topic in the
`FORWARD_TOPIC` environment variable, upper-cased, with its content type
(the subscription's entry needs `publish = ["THAT-TOPIC"]`). A refused send
fails the delivery with the host's error, so the retry policy applies.
"""

import os

from serverless_wasm import log, messaging


@messaging.subscriber
def handle(message: messaging.Message) -> None:
    data = message.data()
    if data.startswith(b"ask:"):
        messaging.reply(message, b"python saw: " + data[4:])
        return
    topic = os.environ.get("FORWARD_TOPIC")
    if topic is None:
        raise messaging.MessagingError("other", "FORWARD_TOPIC is not set in the env")
    log.info(f"forwarding {len(data)} bytes from {message.topic()} to {topic}")
    messaging.send(topic, data.upper(), content_type=message.content_type())
