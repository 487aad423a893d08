"""The simple predictors edge replay scores against (edge.offline.baselines)."""

from edge.offline.baselines import ConnectionClass


def test_connection_class_follows_the_facebook_library():
    cc = ConnectionClass()
    for _ in range(200):
        cc.add(100.0)
    assert cc.klass() == "POOR"
    for _ in range(200):
        cc.add(3000.0)
    assert cc.klass() == "EXCELLENT"
    assert cc.cutover == 20
