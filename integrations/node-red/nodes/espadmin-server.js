// The "espadmin-server" config node: where the ESP Admin server is and the API token the
// other nodes use. The token is a credential: Node-RED keeps it out of exported flows.
"use strict";

module.exports = function (RED) {
  function EspadminServerNode(n) {
    RED.nodes.createNode(this, n);
    this.url = n.url;
    this.tenant = n.tenant || "";
  }
  RED.nodes.registerType("espadmin-server", EspadminServerNode, {
    credentials: { token: { type: "password" } },
  });
};
