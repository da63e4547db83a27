"""A stand-in for confluent_kafka.Message, for unit tests of pure logic (handlers, the
transaction state machine, the offset-gap guard)."""


class FakeMsg:
    def __init__(self, value, key=b"k", topic="bid_requests", partition=0, offset=0,
                 headers=None, error=None):
        self._value, self._key, self._topic = value, key, topic
        self._partition, self._offset, self._headers = partition, offset, headers
        self._error = error

    def value(self):
        return self._value

    def key(self):
        return self._key

    def topic(self):
        return self._topic

    def partition(self):
        return self._partition

    def offset(self):
        return self._offset

    def headers(self):
        return self._headers

    def error(self):
        return self._error
