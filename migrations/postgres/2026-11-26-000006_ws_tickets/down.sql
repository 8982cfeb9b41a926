DROP TABLE ws_tickets;
